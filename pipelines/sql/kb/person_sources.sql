-- kb.person_sources: one row per (partner, person), what each partner's latest records say of a
-- person: birth year, sex and the temporary-code flag (from the identity code), the latest place
-- the partner knows (municipality of its record with the latest start, then the latest delivery,
-- with that record's start and period) and the first TTK and coaching starts. kb.clients is made
-- from it, so a monthly delivery reads its own partner's records only.
-- Partners with places and the others are grouped apart, each with its own aggregates only (every
-- record through every aggregate took twice as long).
-- refresh: by partner, by person
CREATE TABLE kb.person_sources AS
WITH places AS (  -- the partners that know where a person lives, and TTK's starts
    SELECT 'te' AS partner, pseudonym, birth_year, sex, temporary_id, municipality, start_date, delivery_period,
           NULL::DATE AS ttk_start FROM stg_te
    UNION ALL SELECT 'ttk', pseudonym, birth_year, sex, temporary_id, municipality, start_date, delivery_period,
           start_date FROM stg_ttk
    UNION ALL SELECT 'typ', pseudonym, birth_year, sex, temporary_id, municipality, start_date, delivery_period,
           NULL FROM stg_typ
    UNION ALL SELECT 'kunta', pseudonym, birth_year, sex, temporary_id, municipality, start_date, delivery_period,
           NULL FROM stg_kunta
),
others AS (
    SELECT 'valmennus' AS partner, pseudonym, birth_year, sex, temporary_id, coaching_start FROM stg_valmennus
    UNION ALL SELECT 'kela', pseudonym, birth_year, sex, temporary_id, NULL FROM stg_kela
    UNION ALL SELECT 'mittarit', pseudonym, birth_year, sex, temporary_id, NULL FROM stg_mittarit
),
placed AS (  -- each partner's aggregates only: a place order for the partners with places
    -- (start, then delivery period, a missing start last, as in a row comparison) as one integer:
    -- days since 1900 x 100 000 + year x 12 + month (a row value is 1.5x slower to compare)
    SELECT partner, pseudonym, any_value(birth_year) AS birth_year, any_value(sex) AS sex,
           bool_or(temporary_id) AS temporary_id,
           arg_max(municipality, place_key) AS municipality,
           max(place_key) FILTER (WHERE municipality IS NOT NULL) AS place_key,
           min(ttk_start) AS first_ttk_start, NULL::DATE AS first_coaching_start
    FROM (SELECT *, coalesce(start_date - DATE '1900-01-01', 99999999)::BIGINT * 100000
                    + left(delivery_period, 4)::INTEGER * 12 + right(delivery_period, 2)::INTEGER AS place_key
          FROM places)
    GROUP BY partner, pseudonym
    UNION ALL
    SELECT partner, pseudonym, any_value(birth_year), any_value(sex), bool_or(temporary_id), NULL, NULL, NULL,
           min(coaching_start)
    FROM others GROUP BY partner, pseudonym
)
SELECT partner, pseudonym, birth_year::SMALLINT AS birth_year, sex, temporary_id, municipality,
       CASE WHEN place_key // 100000 < 99999999 THEN DATE '1900-01-01' + (place_key // 100000)::INTEGER END
           AS place_start,
       printf('%04d-%02d', (place_key % 100000 - 1) // 12, (place_key % 100000 - 1) % 12 + 1) AS place_period,
       first_ttk_start, first_coaching_start
FROM placed;
