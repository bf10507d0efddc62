-- ind.impact_units — the units of the TTK impact comparison (knowledge-base spec v2), one row per
-- (role, pseudonym, index_month): every treated TTK-cohort member at their index month, and every
-- eligible not-yet-treated control at the index month of every cohort member with 12 months of
-- follow-up observed (the views use the cells that have treated). A table: ind.impact_cells and
-- the impact views read it, and so can evaluators. A person without sex or
-- birth year (never seen: both come from the identity code) has no cell: never a control, and
-- unmatched if treated.
--
-- Months are counted as integers (year * 12 + month − 1). Status in month m = status on its 15th:
-- each TE spell covers the months whose 15th lies in [start, end]; as a bit range over the months
-- of the comparison, minus the months of every spell of the person that starts later (the latest
-- start decides an overlapping day; TE's natural key makes starts unique per person, and status,
-- then the months covered, order any tie: the units depend on which spells exist, never on their
-- order). Bit sets per person and status class (01; 01 or 02; 10 or 11; 11) then answer every
-- window of the spec with a shift and a bit count. A HUGEINT holds 124
-- months: index months are taken in batches of 100 (each batch with its own base month).
-- Municipal cost (TMTU + TOTU municipal share) is summed over the unit's 12 months before and after:
-- for a person whose units are all made, from one list of (month, euros) per person, summed as
-- each unit passes it (joining sums back to the units by person and month held a second table of
-- 6 M rows: 8.4 s and spilling, against 8.0 s at 1 M persons); for a kept person, whose units are
-- made at the new index months only, as plain sums per new month (no list: 2.1 s against 2.8 s
-- for a TE month at 1 M persons). Persons are joined on an integer id, not the 64-character
-- pseudonym, until the last step. The rows are not sorted: every
-- reader groups or filters them, and ordering 6 M units took 2 of the 11 seconds at 1 M persons.
--
-- Maintained, not remade. A unit is made of its index month and one person's inputs only: the
-- person's kb.clients fields, status spells and municipal payments. ind.impact_unit_inputs keeps a
-- 64-bit digest of them per person. A build over the previous knowledge base (its file is carried
-- forward and the ind SQL is the same: see knowledge_base.carried_tables) keeps the previous units
-- of every person whose digest is unchanged, at every index month the comparison still has, and
-- makes the rest: every unit of a person whose inputs changed, and every unit at an index month new
-- to the comparison (a TE month moves as_of, and a month of TTK starts joins). A new knowledge base
-- has no previous units: all are made.
-- depends: ind.ttk_cohort
CREATE TABLE IF NOT EXISTS ind.impact_units (
    role VARCHAR, pseudonym VARCHAR, index_month DATE, sex VARCHAR, birth_year SMALLINT, birth_year_group SMALLINT,
    prior_unemployed_months INTEGER, prior_band SMALLINT, prior_municipal_cost_eur DECIMAL(14, 2),
    employed_open_market_6m INTEGER, employed_open_market_12m INTEGER, employed_months_12m INTEGER,
    municipal_cost_change_eur DECIMAL(14, 2), open_market_months BIGINT);
CREATE TABLE IF NOT EXISTS ind.impact_unit_inputs (pseudonym VARCHAR, inputs UBIGINT);

CREATE TEMP TABLE impact_inputs AS  -- this build's digests (sums of row hashes: row order is not an input)
WITH spells AS (
    SELECT pseudonym, sum(hash(status, start_date, end_date)) AS d FROM kb.status_spells GROUP BY pseudonym
),
paid AS (
    SELECT pseudonym, sum(hash(month, benefit, municipal_share_eur)) AS d
    FROM kb.benefits WHERE benefit IN ('TMTU', 'TOTU') GROUP BY pseudonym
)
SELECT c.pseudonym, hash(c.sex, c.birth_year, c.programme_client, c.first_ttk_start, c.first_coaching_start,
                         s.d, p.d) AS inputs
FROM kb.clients c LEFT JOIN spells s USING (pseudonym) LEFT JOIN paid p USING (pseudonym)
WHERE NOT c.temporary_id;

CREATE TEMP TABLE impact_people AS
SELECT row_number() OVER ()::INTEGER AS pid, c.pseudonym, c.sex, c.birth_year,
       year(c.first_ttk_start) * 12 + month(c.first_ttk_start) - 1 AS ttk_m,
       year(c.first_coaching_start) * 12 + month(c.first_coaching_start) - 1 AS coaching_m,
       k.pseudonym IS NOT NULL AS kept  -- inputs unchanged since the previous build: its units stay
FROM kb.clients c
LEFT JOIN (SELECT pseudonym FROM impact_inputs JOIN ind.impact_unit_inputs USING (pseudonym, inputs)) k
       USING (pseudonym)
WHERE NOT c.temporary_id;

-- the previous digests are read: this build's are stored now (but for the persons whose digest is the
-- same), so that they hold no memory while units are made
DELETE FROM ind.impact_unit_inputs WHERE pseudonym NOT IN (SELECT pseudonym FROM impact_people WHERE kept);
INSERT INTO ind.impact_unit_inputs
SELECT * FROM impact_inputs ANTI JOIN (SELECT pseudonym FROM impact_people WHERE kept) USING (pseudonym);
DROP TABLE impact_inputs;

CREATE TEMP TABLE impact_candidates AS  -- the TTK cohort with a reliable code and 12 months of follow-up observed
SELECT p.pid, p.ttk_m AS m0
FROM impact_people p SEMI JOIN ind.ttk_cohort USING (pseudonym)
WHERE p.ttk_m + 12 <= (SELECT year(as_of) * 12 + month(as_of) - 1 FROM kb.build_info);

CREATE TEMP TABLE impact_months AS  -- the index months, and which of them the previous units lack
SELECT m0, (m0 - min(m0) OVER ()) // 100 AS batch,
       m0 NOT IN (SELECT DISTINCT year(index_month) * 12 + month(index_month) - 1 FROM ind.impact_units) AS new
FROM (SELECT DISTINCT m0 FROM impact_candidates);

DELETE FROM ind.impact_units
WHERE pseudonym NOT IN (SELECT pseudonym FROM impact_people WHERE kept)
   OR year(index_month) * 12 + month(index_month) - 1 NOT IN (SELECT m0 FROM impact_months);

-- Joins as written: the units are the probe side of the join to the payment lists. DuckDB's
-- estimate of the units made is far too low (91 000 against 6.1 M at 1 M persons), and swapping
-- the sides by it holds the units in a hash table: out of memory under the 1.5 GB limit.
SET disabled_optimizers = 'build_side_probe_side';
INSERT INTO ind.impact_units
WITH people AS (FROM impact_people),
candidates AS (FROM impact_candidates),
months AS (FROM impact_months),
bases AS (
    SELECT batch, min(m0) - 12 AS base, max(m0) + 12 AS top,
           min(m0) FILTER (WHERE new) - 12 AS new_lo, max(m0) FILTER (WHERE new) + 12 AS new_hi
    FROM months GROUP BY batch
),
spells AS (
    SELECT p.pid, p.kept, s.status, s.start_date,
           year(s.start_date) * 12 + month(s.start_date) - 1 + (day(s.start_date) > 15)::INTEGER AS first_m,
           coalesce(year(s.end_date) * 12 + month(s.end_date) - 1 - (day(s.end_date) < 15)::INTEGER, 1000000) AS last_m
    FROM kb.status_spells s JOIN people p USING (pseudonym)
),
spell_bits AS (  -- an unchanged person's month sets are needed only in a batch with a new month, and
    -- only its spells that reach the 12 months before or after a new index month (a later spell
    -- outside them masks no month a new unit reads)
    SELECT s.pid, s.status, s.start_date, b.batch, b.base,
           CASE WHEN greatest(s.first_m, b.base) <= least(s.last_m, b.top)
                THEN ((1::HUGEINT << (least(s.last_m, b.top) - greatest(s.first_m, b.base) + 1)) - 1)
                     << (greatest(s.first_m, b.base) - b.base)
                ELSE 0 END AS covered
    FROM spells s JOIN bases b ON s.first_m <= b.top AND s.last_m >= b.base
    WHERE NOT s.kept OR (s.first_m <= b.new_hi AND s.last_m >= b.new_lo)
),
resolved AS (
    SELECT pid, status, batch, base,
           covered & ~coalesce(bit_or(covered) OVER (PARTITION BY pid, batch ORDER BY start_date, status, covered
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
    WHERE (NOT p.kept OR i.new)
      AND (k.unemployed >> (i.m0 - 1 - k.base)) & 1 = 1
      AND (c.pid IS NOT NULL OR ((p.ttk_m IS NULL OR p.ttk_m > i.m0) AND (p.coaching_m IS NULL OR p.coaching_m > i.m0)
                                 AND p.sex IS NOT NULL AND p.birth_year IS NOT NULL))  -- a control needs a cell
),
costs AS (  -- municipal cost of a person whose units are all made: a list of (month, euros) over the comparison
    SELECT p.pid, list(struct_pack(m := year(b.month) * 12 + month(b.month) - 1, eur := b.municipal_share_eur)) AS paid
    FROM kb.benefits b JOIN people p USING (pseudonym)
    WHERE b.benefit IN ('TMTU', 'TOTU') AND NOT p.kept
      AND year(b.month) * 12 + month(b.month) - 1 BETWEEN (SELECT min(m0) - 12 FROM months)
                                                       AND (SELECT max(m0) + 12 FROM months)
    GROUP BY p.pid
),
new_sums AS (  -- a kept person's units are made at new index months only: sums per (person, new month)
    SELECT p.pid, n.m0,
           sum(b.municipal_share_eur) FILTER (WHERE b.m BETWEEN n.m0 - 12 AND n.m0 - 1) AS before_eur,
           sum(b.municipal_share_eur) FILTER (WHERE b.m BETWEEN n.m0 + 1 AND n.m0 + 12) AS after_eur
    FROM (SELECT pseudonym, year(month) * 12 + month(month) - 1 AS m, municipal_share_eur FROM kb.benefits
          WHERE benefit IN ('TMTU', 'TOTU')) b
    JOIN (SELECT m0 FROM months WHERE new AND EXISTS (SELECT 1 FROM people WHERE kept)) n
      ON b.m BETWEEN n.m0 - 12 AND n.m0 + 12
    JOIN people p USING (pseudonym)
    WHERE p.kept
    GROUP BY p.pid, n.m0
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
FROM (  -- each unit's costs: summed from its person's list as the unit passes (no join back of 6 M sums by
    -- (pid, m0)), or the sums of a kept person at a new month
    SELECT u.*,
           coalesce(list_sum(list_transform(list_filter(c.paid, lambda x: x.m BETWEEN u.m0 - 12 AND u.m0 - 1),
                                            lambda x: x.eur)), s.before_eur, 0) AS before_eur,
           coalesce(list_sum(list_transform(list_filter(c.paid, lambda x: x.m BETWEEN u.m0 + 1 AND u.m0 + 12),
                                            lambda x: x.eur)), s.after_eur, 0) AS after_eur
    FROM units u LEFT JOIN costs c USING (pid) LEFT JOIN new_sums s USING (pid, m0)
) u
JOIN people p USING (pid);
RESET disabled_optimizers;

DROP TABLE impact_people; DROP TABLE impact_candidates; DROP TABLE impact_months;
