-- ind.data_quality_warnings — softer data-quality issues that do not stop loading:
-- overlapping TE status spells of one person (the later start decides the overlap days).
CREATE OR REPLACE VIEW ind.data_quality_warnings AS
WITH spells AS (
    SELECT pseudonym, start_date, coalesce(end_date, DATE '9999-12-31') AS end_date,
           max(coalesce(end_date, DATE '9999-12-31')) OVER (
               PARTITION BY pseudonym ORDER BY start_date ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS max_prev_end
    FROM kb.status_spells
)
SELECT 'te' AS partner, 'overlapping status spells' AS warning,
       count(*) AS cases, count(DISTINCT pseudonym) AS persons
FROM spells WHERE start_date <= max_prev_end;
