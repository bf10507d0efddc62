-- ind.quarantine_summary — quarantined rows per partner and reason, for partners to fix
-- at the source (the rows themselves are in kb.quarantine, by file and line).
CREATE OR REPLACE VIEW ind.quarantine_summary AS
SELECT partner, reason, count(*) AS rows, count(DISTINCT period) AS periods,
       min(period) AS first_period, max(period) AS last_period
FROM kb.quarantine
GROUP BY partner, reason
ORDER BY partner, rows DESC, reason;
