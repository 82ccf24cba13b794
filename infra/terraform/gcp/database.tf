# The shared metadata database of a deployment of many hosts (metadata.url): Cloud SQL for
# PostgreSQL on the deployment's private network only, TLS required (components connect through the
# Cloud SQL Auth Proxy: the server certificate names the instance, not an address), backed up daily with
# point-in-time recovery; its password in Secret Manager.

resource "random_password" "metadata" {
  length  = 32
  special = false
}

resource "google_sql_database_instance" "metadata" {
  name                = "${local.prefix}metadata"
  database_version    = "POSTGRES_15"
  region              = var.database_region
  deletion_protection = true
  settings {
    tier              = var.database_tier
    availability_type = var.database_high_availability ? "REGIONAL" : "ZONAL"
    disk_autoresize   = true
    ip_configuration {
      ipv4_enabled    = false
      private_network = var.network
      ssl_mode        = "ENCRYPTED_ONLY"
    }
    backup_configuration {
      enabled                        = true
      point_in_time_recovery_enabled = true
      backup_retention_settings {
        retained_backups = 14
      }
    }
  }
}

resource "google_sql_database" "metadata" {
  name     = "dss"
  instance = google_sql_database_instance.metadata.name
}

resource "google_sql_user" "metadata" {
  name     = "dss"
  instance = google_sql_database_instance.metadata.name
  password = random_password.metadata.result
}

resource "google_secret_manager_secret" "metadata_password" {
  secret_id = "${local.prefix}metadata-password"
  replication {
    auto {}
  }
}

resource "google_secret_manager_secret_version" "metadata_password" {
  secret      = google_secret_manager_secret.metadata_password.id
  secret_data = random_password.metadata.result
}

# Every component reads the password (PGPASSWORD) from the secret.
resource "google_secret_manager_secret_iam_member" "metadata_password" {
  for_each  = google_service_account.component
  secret_id = google_secret_manager_secret.metadata_password.id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${each.value.email}"
}

# The Cloud SQL Auth Proxy beside each component connects as the component's service account.
resource "google_project_iam_member" "metadata_client" {
  for_each = google_service_account.component
  project  = var.project
  role     = "roles/cloudsql.client"
  member   = "serviceAccount:${each.value.email}"
}
