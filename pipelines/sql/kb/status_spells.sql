-- kb.status_spells: TE labour-market status spells (end date inclusive, NULL = ongoing).
-- Overlaps are kept as delivered; indicators resolve them (the latest start decides; a person
-- has one spell per start date, the natural key). In delivery order, like kb.benefits.
CREATE TABLE kb.status_spells AS
SELECT pseudonym, status, start_date, end_date, municipality
FROM stg_te;
