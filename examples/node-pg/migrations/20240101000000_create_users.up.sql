CREATE TABLE users (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email      text NOT NULL,
    name       text,
    created_at timestamptz NOT NULL DEFAULT now()
);
