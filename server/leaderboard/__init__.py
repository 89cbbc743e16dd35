"""The model leaderboard: Bradley-Terry ratings of the models behind the candidates."""
