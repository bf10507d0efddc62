-- kb.clients: one row per pseudonymised person, across every partner.
-- Programme clients (a ttk or valmennus episode) appear only with consent in force;
-- everyone else is the comparison population. Municipality = the latest known one
-- (the record with the latest start date among ttk, te, typ and kunta).
CREATE TABLE kb.clients AS
WITH persons AS (
    SELECT pseudonym, birth_year, sex, temporary_id FROM stg_ttk
    UNION ALL SELECT pseudonym, birth_year, sex, temporary_id FROM stg_valmennus
    UNION ALL SELECT pseudonym, birth_year, sex, temporary_id FROM stg_te
    UNION ALL SELECT pseudonym, birth_year, sex, temporary_id FROM stg_kela
    UNION ALL SELECT pseudonym, birth_year, sex, temporary_id FROM stg_typ
    UNION ALL SELECT pseudonym, birth_year, sex, temporary_id FROM stg_kunta
    UNION ALL SELECT pseudonym, birth_year, sex, temporary_id FROM stg_mittarit
),
places AS (
    SELECT pseudonym, municipality, start_date, delivery_period, 1 AS source_rank FROM stg_te
    UNION ALL SELECT pseudonym, municipality, start_date, delivery_period, 2 FROM stg_ttk
    UNION ALL SELECT pseudonym, municipality, start_date, delivery_period, 3 FROM stg_typ
    UNION ALL SELECT pseudonym, municipality, start_date, delivery_period, 4 FROM stg_kunta
),
latest_place AS (
    SELECT pseudonym,
           arg_max(municipality, (start_date, delivery_period, -source_rank)) AS municipality
    FROM places GROUP BY pseudonym
),
programme AS (
    SELECT pseudonym, min(start_date) AS first_ttk_start, NULL::DATE AS first_coaching_start
    FROM stg_ttk GROUP BY pseudonym
    UNION ALL
    SELECT pseudonym, NULL, min(coaching_start) FROM stg_valmennus GROUP BY pseudonym
),
programme_by_person AS (
    SELECT pseudonym, min(first_ttk_start) AS first_ttk_start,
           min(first_coaching_start) AS first_coaching_start
    FROM programme GROUP BY pseudonym
),
people AS (  -- one row per person first: the joins below then meet a million rows, not every record
    SELECT pseudonym, any_value(birth_year) AS birth_year, any_value(sex) AS sex, bool_or(temporary_id) AS temporary_id
    FROM persons GROUP BY pseudonym
)
SELECT p.pseudonym,
       p.birth_year::SMALLINT AS birth_year,
       p.sex,
       lp.municipality,
       p.temporary_id,
       pr.pseudonym IS NOT NULL AS programme_client,
       pr.first_ttk_start,
       pr.first_coaching_start
FROM people p
LEFT JOIN latest_place lp USING (pseudonym)
LEFT JOIN programme_by_person pr USING (pseudonym)
ORDER BY p.pseudonym;
