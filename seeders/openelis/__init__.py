"""seeders.openelis.seeder"""
