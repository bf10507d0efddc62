-- ind.data_quality — every delivery seen, per partner and period: what was read, loaded
-- and quarantined, or why it was rejected. For a loaded delivery
-- rows_read = rows_loaded + rows_quarantined. A rejected re-delivery leaves the previous
-- version of the period in place (previous_version_kept, rows_in_place).
CREATE OR REPLACE VIEW ind.data_quality AS
SELECT partner, period, file, rows_read, rows_loaded, rows_quarantined, status, reason,
       previous_version_kept, rows_in_place, content_sha256
FROM kb.deliveries
ORDER BY partner, period;
