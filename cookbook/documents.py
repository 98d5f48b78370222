"""The small corpus the RAG examples retrieve from: eight facts, one of which answers the question."""

DOCUMENTS = [
    "Honeybees tell their nestmates where flowers are with the waggle dance: the angle of the dance shows the "
    "direction of the food relative to the sun, and the length of the waggle run shows its distance.",
    "Mount Everest, on the border between Nepal and China, is the highest mountain above sea level. Its height "
    "was measured in 2020 as 8,849 metres.",
    "Python is a programming language created by Guido van Rossum. Its first version was released in 1991, and "
    "its name comes from the comedy group Monty Python.",
    "Photosynthesis is how plants turn light into food: chlorophyll captures sunlight, which turns water and "
    "carbon dioxide into glucose and releases oxygen.",
    "The Great Barrier Reef, off the coast of Queensland in Australia, is the largest coral reef system in the "
    "world. It stretches for about 2,300 kilometres.",
    "Marie Curie was the first person to win two Nobel Prizes: in physics in 1903, and in chemistry in 1911 for "
    "discovering the elements polonium and radium.",
    "All true tea comes from one plant, Camellia sinensis. Green tea is dried quickly, while black tea is left "
    "to oxidise first, which darkens the leaves.",
    "The Rosetta Stone carries the same decree in three scripts: hieroglyphic, Demotic and ancient Greek. It "
    "let Jean-Francois Champollion decipher hieroglyphs in 1822.",
]
QUESTION = "How do honeybees tell each other where flowers are?"
