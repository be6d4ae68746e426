"""Operations: what every function does besides its work.

``logs``      structured logging (Powertools), the run and action bound to every line
``metrics``   CloudWatch embedded-metric-format counts
``settings``  configuration from environment variables, validated once per container
"""
