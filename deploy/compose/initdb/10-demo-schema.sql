-- The same objects on the source and every target (run once, when a server's volume
-- is first initialised): permsync carries permissions, never tables or schemas.
-- The same set as `npm run demo`.
CREATE ROLE app_owner;
CREATE ROLE app_rw;
CREATE ROLE reporting;
CREATE ROLE tmp_contractor;
CREATE SCHEMA shop;
CREATE TABLE shop.orders (id int PRIMARY KEY, customer text, card_number text, total numeric);
CREATE TABLE shop.customers (id int PRIMARY KEY, name text);
CREATE SEQUENCE shop.invoice_no;
