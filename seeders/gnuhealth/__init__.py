"""seeders.gnuhealth.seeder"""
