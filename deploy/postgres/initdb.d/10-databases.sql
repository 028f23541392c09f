-- Databases of the stack, created once on an empty volume. The owner is the
-- POSTGRES_USER (iru). The audit ledger lives in database iru; its
-- migration creates the application role that may only INSERT and SELECT.
CREATE DATABASE temporal;
CREATE DATABASE temporal_visibility;
CREATE DATABASE keycloak;
