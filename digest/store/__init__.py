"""Storage: engine and sessions, ORM tables, migrations, paper upserts, stored vectors."""
