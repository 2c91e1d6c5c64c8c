-- 0002: keep the whole licence detection of a commit next to its resolution, so reports
-- (audit, NOTICE, BOMs) read what was concluded at pull time without the licence files.
--   detection_json: larder_licence::Detection as JSON (signals, inherited licences, notices);
--   declared:       the catalog key the card declares, NULL when it does not resolve.
-- `licence_signals` rows whose source is not 'card' are the detection's signals (source =
-- the signal kind: licence_file, card_license, card_license_name, card_license_link, tag,
-- gate, base_model); they are replaced together with the resolution.

ALTER TABLE licence_resolutions ADD COLUMN declared TEXT;
ALTER TABLE licence_resolutions ADD COLUMN detection_json TEXT;
