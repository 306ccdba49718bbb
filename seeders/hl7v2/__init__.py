"""seeders.hl7v2.seeder"""
