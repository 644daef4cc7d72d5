-- The sample app's shows (applied once by `ledge up --sqlite @migrations/001_shows.sql`).
CREATE TABLE shows (
  id INTEGER PRIMARY KEY,
  title TEXT NOT NULL,
  starts_at TEXT NOT NULL
);
CREATE INDEX shows_by_start ON shows (starts_at);
INSERT INTO shows (id, title, starts_at) VALUES
  (1, 'Opening Night', '2026-12-01T19:30:00Z'),
  (2, 'The Matinee', '2026-12-02T14:00:00Z'),
  (3, 'Late Show', '2026-12-02T22:00:00Z');
