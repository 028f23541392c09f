// Package detectors holds the detector kits: the configuration a team
// copies into Alertmanager (alertmanager.yml), Falcosidekick
// (falcosidekick*.yaml) and Wazuh (wazuh/) to send alerts to the intake.
// Its tests drive each detector's own sender code, or its documented
// payload, against the real intake handler.
package detectors
