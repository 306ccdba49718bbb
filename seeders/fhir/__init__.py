"""seeders.fhir.seeder"""
