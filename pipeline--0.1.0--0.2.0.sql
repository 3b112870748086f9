-- pipeline 0.1.0 -> 0.2.0 (ALTER EXTENSION pipeline UPDATE TO '0.2.0').
--
-- Every change 0.2.0 makes to an SQL object of 0.1.0 is here as well as in
-- src/sql/: an upgraded database must equal a fresh 0.2.0 install
-- (test/t/070_upgrade.pl compares the two).  The rules of the install
-- script hold here too: everything schema-qualified, functions pin
-- search_path, no extension placeholders inside quoted strings.  CREATE OR
-- REPLACE appears only for functions that are already members of this
-- extension (PostgreSQL refuses to replace anything else in an extension
-- script).

\echo Use "ALTER EXTENSION pipeline UPDATE TO '0.2.0'" to load this file. \quit
