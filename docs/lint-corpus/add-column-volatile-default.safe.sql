-- lint corpus: safe twin of add-column-volatile-default
ALTER TABLE users ADD COLUMN signed_up_at timestamptz DEFAULT now();
