# Private arenas: accounts on votes, flags and their review, invitations.

import arena.models
import django.core.validators
import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def identity_flags_to_review(apps, schema_editor):
    """Votes flagged for a reply naming a model wait for review like every other flagged vote."""
    Vote = apps.get_model("arena", "Vote")
    Vote.objects.filter(identity_flagged=True).update(review="pending", flag_reasons=["names_identity"])


class Migration(migrations.Migration):

    dependencies = [
        ('arena', '0009_draw_probability'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='Invitation',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('token', models.CharField(default=arena.models.invitation_token, editable=False, max_length=64, unique=True)),
                ('note', models.CharField(blank=True, help_text='Whom it is for; admins only.', max_length=200)),
                ('max_uses', models.PositiveIntegerField(default=1, validators=[django.core.validators.MinValueValidator(1)])),
                ('uses', models.PositiveIntegerField(default=0, editable=False)),
                ('expires_at', models.DateTimeField(default=arena.models.invitation_expiry)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
            ],
            options={
                'ordering': ['-created_at'],
            },
        ),
        migrations.AddField(
            model_name='vote',
            name='flag_reasons',
            field=models.JSONField(blank=True, default=list),
        ),
        migrations.AddField(
            model_name='vote',
            name='review',
            field=models.CharField(blank=True, choices=[('', 'not flagged'), ('pending', 'waiting for review'), ('included', 'included'), ('excluded', 'excluded')], default='', max_length=8),
        ),
        migrations.AddField(
            model_name='vote',
            name='user',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='arena_votes', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AddIndex(
            model_name='vote',
            index=models.Index(condition=models.Q(('review', 'pending')), fields=['id'], name='vote_review_pending'),
        ),
        migrations.AddField(
            model_name='invitation',
            name='created_by',
            field=models.ForeignKey(blank=True, editable=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL),
        ),
        migrations.CreateModel(
            name='FlaggedVote',
            fields=[],
            options={'verbose_name': 'flagged vote', 'proxy': True, 'indexes': [], 'constraints': []},
            bases=('arena.vote',),
        ),
        migrations.RunPython(identity_flags_to_review, migrations.RunPython.noop),
    ]
