-- lint corpus: breaks enum-value-removed
DROP TYPE mood;
CREATE TYPE mood AS ENUM ('happy');
