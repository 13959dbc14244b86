import keras
m = keras.models.load_model("m.keras", safe_mode=False)
n = keras.models.load_model("n.keras")
