-- ind.savings_scenario — the programme plan's projected annual municipal saving:
-- long-term unemployed × employment rate × (municipal share of labour market subsidy +
-- social assistance), per person-year. Parameters come from configuration (kb.parameters).
CREATE OR REPLACE VIEW ind.savings_scenario AS
SELECT p.long_term_unemployed,
       p.employment_rate,
       p.municipal_labour_market_subsidy_eur,
       p.social_assistance_eur,
       (p.long_term_unemployed * p.employment_rate
        * (p.municipal_labour_market_subsidy_eur + p.social_assistance_eur))::DECIMAL(14, 2) AS annual_saving_eur
FROM kb.parameters p;
