"""seeders.sql.seeder"""
