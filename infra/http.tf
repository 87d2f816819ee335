# The HTTP trigger (functions/http_trigger, seed 000's POST /sync API): who may call it.
#
# Cloud Run checks each caller's Google OIDC ID token and roles/run.invoker before the function
# runs, and forwards it with its signature replaced by SIGNATURE_REMOVED_BY_GOOGLE; the function
# checks the claims again (audience, issuer, expiry; and the email when every invoker is a user
# or service account). It trusts the removed signature (OFFSITE__HTTP__PLATFORM_VERIFIED, set in
# functions.tf) only because no request reaches it without Cloud Run's check: allUsers is never
# an invoker. Invokers come from the config's
# `http.invokers` (IAM members); allUsers and allAuthenticatedUsers are refused here and by
# `offsite config validate`, so the trigger is never public.

locals {
  http_functions = { for name, fn in local.functions : name => fn if fn.http }
  http_invokers  = toset(coalesce(try(local.config.http.invokers, null), []))
  public_members = [for m in local.http_invokers : m if contains(["allUsers", "allAuthenticatedUsers"], m)]

  # The audiences a token for the function may carry: its two URLs (cloudfunctions.net, and
  # the Cloud Run service's deterministic run.app URL). Known before the function exists, so
  # they reach it as OFFSITE__HTTP__AUDIENCES without a second apply.
  http_audiences = {
    for name, fn in local.http_functions : name => "https://${local.region}-${local.project}.cloudfunctions.net/${fn.deployed_name},https://${fn.deployed_name}-${data.google_project.this.number}.${local.region}.run.app"
  }

  http_invoker_grants = merge([
    for name, fn in local.http_functions : { for member in local.http_invokers : "${name}/${member}" => { function = name, member = member } }
  ]...)
}

resource "google_cloud_run_v2_service_iam_member" "http_invoker" {
  for_each = local.http_invoker_grants

  project  = local.project
  location = local.region
  name     = google_cloudfunctions2_function.fn[each.value.function].service_config[0].service
  role     = "roles/run.invoker"
  member   = each.value.member

  lifecycle {
    precondition {
      condition     = length(local.public_members) == 0
      error_message = "http.invokers must not contain allUsers or allAuthenticatedUsers (${join(", ", local.public_members)}): the HTTP trigger starts exports and is never public."
    }
  }
}

output "http_trigger_url" {
  description = "The HTTP trigger: curl -H \"Authorization: Bearer $(gcloud auth print-identity-token --impersonate-service-account=SA --audiences=URL --include-email)\" -X POST URL/sync/DATASET"
  value       = { for name, fn in local.http_functions : name => google_cloudfunctions2_function.fn[name].service_config[0].uri }
}
