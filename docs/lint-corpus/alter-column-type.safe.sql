-- lint corpus: safe twin of alter-column-type
-- varchar(100) to varchar(200) and varchar(50) to text change no stored value.
ALTER TABLE users ALTER COLUMN email TYPE varchar(200);
ALTER TABLE users ALTER COLUMN name TYPE text;
