from django.apps import AppConfig


class LifeloopConfig(AppConfig):
    name = "lifeloop"
    verbose_name = "Life loop"
