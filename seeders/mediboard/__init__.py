"""seeders.mediboard.seeder"""
