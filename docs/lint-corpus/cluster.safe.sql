-- lint corpus: safe twin of cluster
-- Only marks the index for a later CLUSTER; rewrites nothing.
ALTER TABLE users CLUSTER ON users_pkey;
