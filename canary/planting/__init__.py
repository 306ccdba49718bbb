"""canary.planting.planter"""
