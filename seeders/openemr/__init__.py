"""seeders.openemr.seeder"""
