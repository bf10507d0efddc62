-- ind.time_to_next_service — from the end of each ended TTK episode of the TTK cohort to
-- the start of the next episode of any service starting on or after that end date
-- (ind.ttk_next_service). next_service NULL = no next service yet (as_of).
-- depends: ind.ttk_next_service
CREATE OR REPLACE VIEW ind.time_to_next_service AS
SELECT next_service, count(*) AS episodes, count(DISTINCT pseudonym) AS clients,
       median(days)::DOUBLE AS median_days, avg(days) AS mean_days, max(days) AS max_days
FROM ind.ttk_next_service
GROUP BY next_service
ORDER BY next_service NULLS LAST;
