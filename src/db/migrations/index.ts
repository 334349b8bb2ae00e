import type { Migration } from './helpers.ts';
import * as m0001 from './0001_directory.ts';
import * as m0003 from './0003_signing_keys.ts';
import * as m0004 from './0004_applications.ts';
import * as m0005 from './0005_oidc_storage.ts';
import * as m0006 from './0006_tokens.ts';
import * as m0007 from './0007_logout.ts';
import * as m0008 from './0008_whitelists_by_name.ts';
import * as m0010 from './0010_must_change_password.ts';
import * as m0014 from './0014_alliance_auth_polling.ts';
import * as m0015 from './0015_imported_client_secrets.ts';
import * as m0018 from './0018_audit_events.ts';
import * as m0019 from './0019_totp_enrolment.ts';
import * as m0020 from './0020_recovery_codes.ts';
import * as m0023 from './0023_name_keys.ts';
import * as m0043 from './0043_id_token_claims.ts';
import * as m0052 from './0052_payload_user_model_index.ts';
import * as m0055 from './0055_change_epoch.ts';
import * as m0070 from './0070_partial_payload_indexes.ts';
import * as m0071 from './0071_change_log.ts';
import * as m0072 from './0072_change_log_profiles.ts';
import * as m0073 from './0073_partial_audit_user_index.ts';
import * as m0074 from './0074_alliance_auth_catalog.ts';
import * as m0075 from './0075_sign_ins_stopped.ts';
import * as m0076 from './0076_whitelist_names_exact.ts';
import * as m0077 from './0077_issued_code_created_at.ts';
import * as m0078 from './0078_signing_key_withdrawn.ts';
import * as m0079 from './0079_login_failure_method.ts';
import * as m0080 from './0080_directory_binding.ts';
import * as m0081 from './0081_delivery_attempt_recorded_at.ts';
import * as m0082 from './0082_client_id_case_unique.ts';
import * as m0083 from './0083_purge_indexes.ts';
import * as m0084 from './0084_issued_code_unreused_index.ts';

/**
 * Every migration, in order. Forward-only: a released migration is never edited, a change is a new
 * entry. Names sort in application order.
 */
export const MIGRATIONS: Readonly<Record<string, Migration>> = {
  '0001_directory': m0001,
  '0003_signing_keys': m0003,
  '0004_applications': m0004,
  '0005_oidc_storage': m0005,
  '0006_tokens': m0006,
  '0007_logout': m0007,
  '0008_whitelists_by_name': m0008,
  '0010_must_change_password': m0010,
  '0014_alliance_auth_polling': m0014,
  '0015_imported_client_secrets': m0015,
  '0018_audit_events': m0018,
  '0019_totp_enrolment': m0019,
  '0020_recovery_codes': m0020,
  '0023_name_keys': m0023,
  '0043_id_token_claims': m0043,
  '0052_payload_user_model_index': m0052,
  '0055_change_epoch': m0055,
  '0070_partial_payload_indexes': m0070,
  '0071_change_log': m0071,
  '0072_change_log_profiles': m0072,
  '0073_partial_audit_user_index': m0073,
  '0074_alliance_auth_catalog': m0074,
  '0075_sign_ins_stopped': m0075,
  '0076_whitelist_names_exact': m0076,
  '0077_issued_code_created_at': m0077,
  '0078_signing_key_withdrawn': m0078,
  '0079_login_failure_method': m0079,
  '0080_directory_binding': m0080,
  '0081_delivery_attempt_recorded_at': m0081,
  '0082_client_id_case_unique': m0082,
  '0083_purge_indexes': m0083,
  '0084_issued_code_unreused_index': m0084,
};
