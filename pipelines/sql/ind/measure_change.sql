-- ind.measure_change — change in functional capacity per instrument for TTK-cohort
-- members measured at baseline (ALKU) and at the end (LOPPU, same day or later):
-- their earliest ALKU value against their latest LOPPU value.
-- depends: ind.ttk_cohort
CREATE OR REPLACE VIEW ind.measure_change AS
WITH cohort_measurements AS (
    SELECT m.*
    FROM kb.measurements m
    SEMI JOIN ind.ttk_cohort USING (pseudonym)
),
baseline AS (
    SELECT pseudonym, instrument, min(measured_on) AS on_day, arg_min(value, measured_on) AS value
    FROM cohort_measurements WHERE phase = 'ALKU' GROUP BY ALL
),
final AS (
    SELECT pseudonym, instrument, max(measured_on) AS on_day, arg_max(value, measured_on) AS value
    FROM cohort_measurements WHERE phase = 'LOPPU' GROUP BY ALL
),
pairs AS (
    SELECT b.instrument, b.value AS baseline, f.value AS final
    FROM baseline b JOIN final f USING (pseudonym, instrument)
    WHERE f.on_day >= b.on_day
)
SELECT instrument,
       count(*) AS clients,
       avg(baseline) AS mean_baseline,
       avg(final) AS mean_end,
       avg(final) - avg(baseline) AS mean_change
FROM pairs
GROUP BY instrument
ORDER BY instrument;
