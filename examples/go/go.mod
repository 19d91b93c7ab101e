module wasmlayer.example/transform

go 1.24
