-- ISO 4217 currencies with their minor-unit exponents. Amounts everywhere are
-- bigint minor units of one of these.
CREATE TABLE currencies (
    code     char(3)  PRIMARY KEY,        -- alphabetic, e.g. EUR
    numeric  char(3)  NOT NULL UNIQUE,    -- numeric, e.g. 978 (ISO 8583 DE49/DE51)
    exponent smallint NOT NULL CHECK (exponent BETWEEN 0 AND 4)
);

INSERT INTO currencies (code, numeric, exponent) VALUES
    ('EUR', '978', 2), ('USD', '840', 2), ('GBP', '826', 2), ('PLN', '985', 2),
    ('CHF', '756', 2), ('CZK', '203', 2), ('SEK', '752', 2), ('NOK', '578', 2),
    ('DKK', '208', 2), ('HUF', '348', 2), ('RON', '946', 2), ('JPY', '392', 0),
    ('KWD', '414', 3), ('BHD', '048', 3), ('CAD', '124', 2), ('AUD', '036', 2);
