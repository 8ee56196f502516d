-- A 200,000-row table with indexes and aggregate queries, all values generated
-- deterministically so that two runs print exactly the same thing.
PRAGMA journal_mode = WAL;
-- The allocator is what is measured, not the disk.
PRAGMA synchronous = OFF;
PRAGMA cache_size = -65536;
CREATE TABLE orders (
  id INTEGER PRIMARY KEY,
  customer TEXT NOT NULL,
  region INTEGER NOT NULL,
  amount INTEGER NOT NULL,
  note TEXT
);
WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < 200000)
INSERT INTO orders (id, customer, region, amount, note)
SELECT n,
       printf('customer-%05d', (n * 7919) % 20011),
       (n * 31) % 97,
       (n * 104729) % 100003,
       substr('lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor', 1 + n % 40, 10 + n % 37)
FROM seq;
CREATE INDEX orders_customer ON orders (customer);
CREATE INDEX orders_region_amount ON orders (region, amount);
CREATE TABLE regions AS SELECT DISTINCT region, printf('region %d', region) AS label FROM orders;
CREATE UNIQUE INDEX regions_region ON regions (region);
SELECT count(*), sum(amount), min(amount), max(amount), count(DISTINCT customer) FROM orders;
SELECT region, count(*), sum(amount), round(avg(amount), 3) FROM orders GROUP BY region ORDER BY sum(amount) DESC LIMIT 10;
SELECT customer, count(*) AS c, sum(amount) FROM orders GROUP BY customer ORDER BY c DESC, customer LIMIT 10;
SELECT r.label, count(*), max(o.amount) FROM orders o JOIN regions r ON r.region = o.region
  WHERE o.amount BETWEEN 1000 AND 50000 GROUP BY r.label ORDER BY r.label LIMIT 10;
SELECT note, count(*) FROM orders GROUP BY note ORDER BY count(*) DESC, note LIMIT 5;
SELECT group_concat(customer, ',') FROM (SELECT customer FROM orders WHERE region = 3 ORDER BY amount DESC LIMIT 20);
SELECT id, amount, sum(amount) OVER (PARTITION BY region ORDER BY id ROWS BETWEEN 50 PRECEDING AND CURRENT ROW) AS running
  FROM orders WHERE region IN (5, 6) ORDER BY running DESC, id LIMIT 5;
UPDATE orders SET amount = amount + 1 WHERE region % 3 = 0;
DELETE FROM orders WHERE id % 10 = 0;
SELECT count(*), sum(amount) FROM orders;
SELECT length(group_concat(note, '')) FROM orders;
PRAGMA integrity_check;
