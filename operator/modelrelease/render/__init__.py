"""Pure builders of the serving objects, and the reading back of what they carry."""
