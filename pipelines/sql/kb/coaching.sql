-- kb.coaching: IPS coaching episodes with the first job found.
-- refresh: by person
CREATE TABLE kb.coaching AS
SELECT pseudonym, coaching_start, coaching_end, placement_date, contract_type, hours_per_week, industry
FROM stg_valmennus
ORDER BY pseudonym, coaching_start;
