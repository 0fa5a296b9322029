#!/usr/bin/env python3
"""The API tests' validator (api_client.Contract) finds what it must: run against made-up
responses, so a validator that passes everything cannot hide behind a passing kvmlet. No /dev/kvm.

    test_api_client.py CONTRACT_YAML
"""
import sys
import unittest

from api_client import Contract, Response

JSON = {"content-type": "application/json"}


def resp(method, path, status, body=b"", headers=None):
    return Response(method, path, status, JSON if headers is None else headers, body)


class ContractFindsWhatIsWrong(unittest.TestCase):
    contract = None

    def problems(self, r, status=None):
        return self.contract.problems(r, status)

    def test_a_put_success_is_204_with_no_body_and_no_content_type(self):
        self.assertEqual(self.problems(resp("PUT", "/boot-source", 204, headers={}), 204), [])
        self.assertTrue(self.problems(resp("PUT", "/boot-source", 200, b"{}"), 204))
        self.assertTrue(self.problems(resp("PUT", "/boot-source", 204, b"{}", headers={})))
        self.assertTrue(self.problems(resp("PUT", "/boot-source", 204, headers=JSON)))
        self.assertTrue(self.problems(resp("PATCH", "/vm", 201, headers={})))

    def test_a_get_is_200_with_json_valid_against_the_response_schema(self):
        good = b'{"id":"a","state":"Running","vmm_version":"1.16.0","app_name":"kvmlet"}'
        self.assertEqual(self.problems(resp("GET", "/", 200, good), 200), [])
        self.assertTrue(self.problems(resp("GET", "/", 200, good.replace(b"Running", b"Booting"))))
        self.assertTrue(self.problems(resp("GET", "/", 200, b'{"id":"a","state":"Running"}')))
        self.assertTrue(self.problems(resp("GET", "/", 200, good, headers={"content-type": "text/plain"})))
        self.assertTrue(self.problems(resp("GET", "/", 200, b"not json")))
        self.assertTrue(self.problems(resp("GET", "/machine-config", 200, b'{"vcpu_count":"2","mem_size_mib":1}')))
        self.assertTrue(self.problems(resp("GET", "/machine-config", 200, b'{"vcpu_count":33,"mem_size_mib":1}')))
        self.assertEqual(self.problems(resp("GET", "/machine-config", 200, b'{"vcpu_count":2,"mem_size_mib":1}')), [])
        self.assertTrue(self.problems(resp("GET", "/version", 200, b"{}")))
        self.assertTrue(self.problems(resp("GET", "/vm/config", 200, b'{"drives":[{"drive_id":"a"}]}')))

    def test_an_error_is_400_with_a_fault_message_string(self):
        self.assertEqual(self.problems(resp("PUT", "/drives/a", 400, b'{"fault_message":"no"}'), 400), [])
        self.assertTrue(self.problems(resp("PUT", "/drives/a", 400, b'{"error":"no"}')))
        self.assertTrue(self.problems(resp("PUT", "/drives/a", 400, b'{"fault_message":1}')))
        self.assertTrue(self.problems(resp("PUT", "/drives/a", 400, b"no")))
        self.assertTrue(self.problems(resp("PUT", "/drives/a", 404, b'{"fault_message":"no"}')))
        self.assertTrue(self.problems(resp("PUT", "/drives/a", 413, b'{"fault_message":"no"}')))
        self.assertEqual(self.problems(resp("PUT", "/mmds", 413, b'{"fault_message":"big"}')), [])
        # PUT /entropy lists no 400: Firecracker's errors there come under `default`.
        self.assertEqual(self.problems(resp("PUT", "/entropy", 400, b'{"fault_message":"no"}')), [])

    def test_a_request_outside_the_contract_must_be_a_400_fault(self):
        self.assertEqual(self.problems(resp("GET", "/nope", 400, b'{"fault_message":"no"}')), [])
        self.assertTrue(self.problems(resp("GET", "/nope", 404, b'{"fault_message":"no"}')))
        self.assertTrue(self.problems(resp("DELETE", "/machine-config", 204, headers={})))

    def test_the_expected_status_is_checked(self):
        self.assertTrue(self.problems(resp("PUT", "/drives/a", 400, b'{"fault_message":"no"}'), 204))

    def test_request_schemas_are_found_for_templated_paths(self):
        schema = self.contract.request_schema("PUT", "/drives/rootfs")
        self.assertEqual(Contract.schema_problems({"drive_id": "a", "is_root_device": True}, schema), [])
        self.assertTrue(Contract.schema_problems({"drive_id": "a"}, schema))


if __name__ == "__main__":
    ContractFindsWhatIsWrong.contract = Contract(sys.argv.pop(1))
    unittest.main(verbosity=2)
