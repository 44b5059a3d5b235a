-- One database per country: two gateways never share a database (each has its own audit log,
-- consents and replay cache). Run once by the postgres image on an empty data directory.
CREATE DATABASE ncpeh_dk;
CREATE DATABASE ncpeh_es;
