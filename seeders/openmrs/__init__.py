"""seeders.openmrs.seeder"""
