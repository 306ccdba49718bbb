"""seeders.common"""
