-- kb.status_spells: TE labour-market status spells (end date inclusive, NULL = ongoing).
-- Overlaps are kept as delivered; indicators resolve them (the latest start decides).
-- Sorted by person, like kb.benefits, for the impact comparison's per-person month sets.
-- refresh: by person
CREATE TABLE kb.status_spells AS
SELECT pseudonym, status, start_date, end_date, municipality
FROM stg_te
ORDER BY pseudonym, start_date;
