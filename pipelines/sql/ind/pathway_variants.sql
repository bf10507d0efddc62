-- ind.pathway_variants — the TTK cohort's full pathways (every episode's service in
-- order of start date, then service), most common first. `steps` = episodes in the
-- variant; `share` = clients / cohort members with at least one episode.
-- depends: ind.ttk_cohort
CREATE OR REPLACE VIEW ind.pathway_variants AS
WITH paths AS (
    SELECT e.pseudonym,
           string_agg(e.service, ' > ' ORDER BY e.start_date, e.service) AS variant,
           count(*) AS steps
    FROM kb.episodes e
    SEMI JOIN ind.ttk_cohort USING (pseudonym)
    GROUP BY e.pseudonym
)
SELECT variant, any_value(steps) AS steps, count(*) AS clients,
       count(*)::DOUBLE / (SELECT count(*) FROM paths) AS share,
       row_number() OVER (ORDER BY count(*) DESC, variant) AS rank
FROM paths
GROUP BY variant
ORDER BY rank;
