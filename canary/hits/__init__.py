"""canary.hits.hit"""
