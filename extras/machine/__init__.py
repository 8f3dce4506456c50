"""The machine and the session: how TensorFlow loads, the device, the CPU, the Session."""
