\set c random(0, 2)
\set a random(18, 70)
SELECT COUNT(*) FROM bench WHERE country = 'c:c' AND age >= :a;
