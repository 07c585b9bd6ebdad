"""Exporter sampling rates an admin sets for exporters that do not export theirs."""

import pytest

from flowreports.models import ExporterSampling
from flowreports.selectors import exporter_sampling_rates

ADD = "/admin/flowreports/exportersampling/add/"


def add(client, **fields):
    data = {"exporter": "192.0.2.100", "observation_domain": "", "sampling_rate": "512", "description": ""}
    data.update(fields)
    return client.post(ADD, data)


@pytest.mark.django_db
def test_an_admin_sets_a_rate_for_all_of_an_exporters_domains_and_one_for_a_single_domain(admin_client):
    assert add(admin_client).status_code == 302
    assert add(admin_client, observation_domain="369099009", sampling_rate="2048").status_code == 302
    assert add(admin_client, exporter="2001:db8::0:1", sampling_rate="100").status_code == 302
    assert exporter_sampling_rates() == {
        ("192.0.2.100", None): 512, ("192.0.2.100", 369099009): 2048, ("2001:db8::1", None): 100,
    }
    assert "1 in 512" in admin_client.get("/admin/flowreports/exportersampling/").content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize(("fields", "message"), [
    ({"sampling_rate": "0"}, "Ensure this value is greater than or equal to 1."),
    ({"sampling_rate": "2147483648"}, "Ensure this value is less than or equal to 2147483647."),
    ({"exporter": "192.0.2"}, "Enter a valid IPv4 or IPv6 address."),
])
def test_a_bad_rate_or_address_is_refused_with_its_reason(admin_client, fields, message):
    response = add(admin_client, **fields)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not ExporterSampling.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(("domain", "message"), [
    ("", "This exporter already has a rate for all its domains."),
    ("7", "This exporter already has a rate for this observation domain."),
])
def test_a_second_rate_for_the_same_exporter_and_domain_is_refused(admin_client, domain, message):
    assert add(admin_client, observation_domain=domain).status_code == 302
    response = add(admin_client, observation_domain=domain, sampling_rate="64")
    assert response.status_code == 200
    assert message in response.content.decode()
    assert ExporterSampling.objects.get().sampling_rate == 512
