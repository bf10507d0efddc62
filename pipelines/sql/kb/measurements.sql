-- kb.measurements: functional-capacity measurements.
-- refresh: by person
CREATE TABLE kb.measurements AS
SELECT pseudonym, measured_on, instrument, phase, value::DOUBLE AS value
FROM stg_mittarit
ORDER BY pseudonym, measured_on, instrument;
