-- The patient table of a small EHR, standing for a real target database in
-- the two-node walkthrough (docs/two-nodes.md):  sqlite3 ehr.db < ehr.sql
CREATE TABLE patients (
    id INTEGER PRIMARY KEY,
    nom VARCHAR(60) NOT NULL,
    nom_naissance VARCHAR(60),
    prenoms VARCHAR(100) NOT NULL,
    sexe CHAR(1) NOT NULL,
    date_naissance DATE NOT NULL,
    nir CHAR(15),
    adresse VARCHAR(120) NOT NULL,
    complement VARCHAR(120),
    code_postal CHAR(5) NOT NULL,
    ville VARCHAR(60) NOT NULL,
    telephone VARCHAR(20),
    email VARCHAR(120),
    lien_resultats VARCHAR(200),
    lien_documents VARCHAR(200),
    identifiant_portail VARCHAR(120),
    mot_de_passe_portail VARCHAR(60),
    cree_le TIMESTAMP NOT NULL
);
