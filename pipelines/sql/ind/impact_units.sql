-- ind.impact_units — the units of the TTK impact comparison (knowledge-base spec v2), one row per
-- (role, pseudonym, index_month): every treated TTK-cohort member at their index month, and every
-- eligible not-yet-treated control at the index month of every cohort member with 12 months of
-- follow-up observed (the views use the cells that have treated). A table, made once per build:
-- ind.impact_cells and the impact views read it, and so can evaluators. A person without sex or
-- birth year (never seen: both come from the identity code) has no cell: never a control, and
-- unmatched if treated.
--
-- Months are counted as integers (year * 12 + month − 1). Status in month m = status on its 15th:
-- each TE spell covers the months whose 15th lies in [start, end]; as a bit range over the months
-- of the comparison, minus the months of every spell of the person that starts later (the latest
-- start decides an overlapping day). Bit sets per person and status class (01; 01 or 02; 10 or 11;
-- 11) then answer every window of the spec with a shift and a bit count. A HUGEINT holds 124
-- months: index months are taken in batches of 100 (each batch with its own base month).
-- Municipal cost (TMTU + TOTU municipal share) is one list of (month, euros) per person, summed
-- over the unit's 12 months before and after. Persons are joined on an integer id, not the
-- 64-character pseudonym, until the last step. Each unit's costs are summed as it passes its
-- person's list (joining the sums back to the units by person and month held a second table of
-- 6 M rows: 8.4 s and spilling, against 8.0 s at 1 M persons). The rows are not sorted: every
-- reader groups or filters them, and ordering 6 M units took 2 of the 11 seconds at 1 M persons.
-- depends: ind.ttk_cohort
CREATE TABLE ind.impact_units AS
WITH params AS (
    SELECT year(as_of) * 12 + month(as_of) - 1 AS as_of_m FROM kb.build_info
),
people AS (
    SELECT row_number() OVER ()::INTEGER AS pid, pseudonym, sex, birth_year,
           year(first_ttk_start) * 12 + month(first_ttk_start) - 1 AS ttk_m,
           year(first_coaching_start) * 12 + month(first_coaching_start) - 1 AS coaching_m
    FROM kb.clients WHERE NOT temporary_id
),
candidates AS (  -- the TTK cohort with a reliable code and 12 months of follow-up observed
    SELECT p.pid, p.ttk_m AS m0 FROM people p SEMI JOIN ind.ttk_cohort USING (pseudonym), params
    WHERE p.ttk_m + 12 <= params.as_of_m
),
months AS (
    SELECT DISTINCT m0, (m0 - min(m0) OVER ()) // 100 AS batch FROM candidates
),
bases AS (
    SELECT batch, min(m0) - 12 AS base, max(m0) + 12 AS top FROM months GROUP BY batch
),
spells AS (
    SELECT p.pid, s.status, s.start_date,
           year(s.start_date) * 12 + month(s.start_date) - 1 + (day(s.start_date) > 15)::INTEGER AS first_m,
           coalesce(year(s.end_date) * 12 + month(s.end_date) - 1 - (day(s.end_date) < 15)::INTEGER, 1000000) AS last_m
    FROM kb.status_spells s JOIN people p USING (pseudonym)
),
spell_bits AS (
    SELECT s.pid, s.status, s.start_date, b.batch, b.base,
           CASE WHEN greatest(s.first_m, b.base) <= least(s.last_m, b.top)
                THEN ((1::HUGEINT << (least(s.last_m, b.top) - greatest(s.first_m, b.base) + 1)) - 1)
                     << (greatest(s.first_m, b.base) - b.base)
                ELSE 0 END AS covered
    FROM spells s JOIN bases b ON s.first_m <= b.top AND s.last_m >= b.base
),
resolved AS (
    SELECT pid, status, batch, base,
           covered & ~coalesce(bit_or(covered) OVER (PARTITION BY pid, batch ORDER BY start_date
                                                     ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING), 0) AS bits
    FROM spell_bits
),
masks AS (
    SELECT pid, batch, base,
           coalesce(bit_or(bits) FILTER (WHERE status = '01'), 0) AS unemployed,
           coalesce(bit_or(bits) FILTER (WHERE status IN ('01', '02')), 0) AS jobless,
           coalesce(bit_or(bits) FILTER (WHERE status IN ('10', '11')), 0) AS employed,
           coalesce(bit_or(bits) FILTER (WHERE status = '11'), 0) AS open_market
    FROM resolved GROUP BY pid, batch, base
),
units AS (
    SELECT k.pid, i.m0, i.m0 - k.base AS i,
           CASE WHEN c.pid IS NOT NULL THEN 'treated' ELSE 'control' END AS role,
           k.jobless, k.employed, k.open_market
    FROM masks k
    JOIN months i USING (batch)
    JOIN people p ON p.pid = k.pid
    LEFT JOIN candidates c ON c.pid = k.pid AND c.m0 = i.m0
    WHERE (k.unemployed >> (i.m0 - 1 - k.base)) & 1 = 1
      AND (c.pid IS NOT NULL OR ((p.ttk_m IS NULL OR p.ttk_m > i.m0) AND (p.coaching_m IS NULL OR p.coaching_m > i.m0)
                                 AND p.sex IS NOT NULL AND p.birth_year IS NOT NULL))  -- a control needs a cell
),
payments AS (  -- municipal cost per person, as a list of (month, euros) inside the comparison's months
    SELECT pseudonym, list(struct_pack(m := year(month) * 12 + month(month) - 1, eur := municipal_share_eur)) AS paid
    FROM kb.benefits
    WHERE benefit IN ('TMTU', 'TOTU')
      AND year(month) * 12 + month(month) - 1 BETWEEN (SELECT min(base) FROM bases) AND (SELECT max(top) FROM bases)
    GROUP BY pseudonym
),
costs AS (
    SELECT p.pid, c.paid FROM payments c JOIN people p USING (pseudonym)
)
SELECT u.role, p.pseudonym, make_date(u.m0 // 12, u.m0 % 12 + 1, 1) AS index_month,
       p.sex, p.birth_year, p.birth_year // 5 AS birth_year_group,
       bit_count((u.jobless >> (u.i - 12)) & 4095)::INTEGER AS prior_unemployed_months,
       (bit_count((u.jobless >> (u.i - 12)) & 4095) - 1) // 3 + 1 AS prior_band,
       u.before_eur::DECIMAL(14, 2) AS prior_municipal_cost_eur,
       ((u.open_market >> (u.i + 6)) & 1)::INTEGER AS employed_open_market_6m,
       ((u.open_market >> (u.i + 12)) & 1)::INTEGER AS employed_open_market_12m,
       bit_count((u.employed >> (u.i + 1)) & 4095)::INTEGER AS employed_months_12m,
       (u.after_eur - u.before_eur)::DECIMAL(14, 2) AS municipal_cost_change_eur,
       ((u.open_market >> (u.i - 12)) & 33554431)::BIGINT AS open_market_months
FROM (  -- each unit's costs are summed from its person's list as the unit passes: no join back by (pid, m0)
    SELECT u.*,
           coalesce(list_sum(list_transform(list_filter(c.paid, lambda x: x.m BETWEEN u.m0 - 12 AND u.m0 - 1),
                                            lambda x: x.eur)), 0) AS before_eur,
           coalesce(list_sum(list_transform(list_filter(c.paid, lambda x: x.m BETWEEN u.m0 + 1 AND u.m0 + 12),
                                            lambda x: x.eur)), 0) AS after_eur
    FROM units u LEFT JOIN costs c USING (pid)
) u
JOIN people p USING (pid);
