-- ind.data_quality — every delivery seen, per partner and period: what was read, loaded
-- and quarantined, or why it was rejected. For a loaded delivery
-- rows_read = rows_loaded + rows_quarantined. A rejected re-delivery leaves the previous
-- version of the period in place (previous_version_kept, rows_in_place). Identity codes
-- found in the file's name or in free-text fields were redacted before anything was written
-- (counted here); a delivery folder removed from the landing zone keeps its loaded rows and
-- shows in_landing_zone = false.
CREATE OR REPLACE VIEW ind.data_quality AS
SELECT partner, period, file, rows_read, rows_loaded, rows_quarantined, status, reason,
       previous_version_kept, rows_in_place, content_sha256,
       codes_redacted_in_names, codes_redacted_in_values, in_landing_zone
FROM kb.deliveries
ORDER BY partner, period;
